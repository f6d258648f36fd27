/* Windows stand-in: see ioq_test_compat.h. */
#include "ioq_test_compat.h"
