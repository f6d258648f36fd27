/*
 * The one SWIG interface of ioq, shared by Python, Lua and D. What is common lives here;
 * each language's typemaps live beside it in <language>.i and are included below.
 */
#if defined(SWIGPYTHON)
%module(package="ioq") _ioq
#elif defined(SWIGLUA)
%module ioq_core
#elif defined(SWIGD)
%module ioq_raw
#else
%module ioq
#endif

%{
#include "ioq.h"
%}

%include <stdint.i>

#if defined(SWIGPYTHON)
%include "python.i"
#elif defined(SWIGLUA)
%include "lua.i"
#elif defined(SWIGD)
%include "d.i"
#endif

%include "ioq.h"
