/** Network addresses: a D value type over ioq_addr. */
module ioq.address;

static import ioq_raw;
import ioq_raw : ioq_addr;
import ioq.errors;

/** Address families as ioq numbers them (not AF_* of the OS). */
enum Family : ushort {
    unspec = ioq_raw.IOQ_AF_UNSPEC,
    inet = ioq_raw.IOQ_AF_INET,
    inet6 = ioq_raw.IOQ_AF_INET6,
}

/** An IPv4 or IPv6 address with port; plain data, copied freely. */
struct Address {
    ioq_addr raw;

    /** Parses "1.2.3.4:80", "[::1]:80" or an address without port. Throws on bad text. */
    static Address parse(string text) @trusted {
        Address a;
        check(ioq_raw.ioq_addr_parse(text, &a.raw), "parse address '" ~ text ~ "'");
        return a;
    }

    /** Like parse, but reports bad text as a Result. */
    static Result!Address tryParse(string text) @trusted {
        Address a;
        int rc = ioq_raw.ioq_addr_parse(text, &a.raw);
        return rc < 0 ? Result!Address.failure(rc) : Result!Address.success(a);
    }

    /** 127.0.0.1:port */
    static Address loopback4(ushort port = 0) @safe {
        Address a;
        a.raw.family = Family.inet;
        a.raw.port = port;
        a.raw.ip[0 .. 4] = [127, 0, 0, 1];
        return a;
    }

    /** [::1]:port */
    static Address loopback6(ushort port = 0) @safe {
        Address a;
        a.raw.family = Family.inet6;
        a.raw.port = port;
        a.raw.ip[15] = 1;
        return a;
    }

    Family family() const @property @safe { return cast(Family) raw.family; }
    ushort port() const @property @safe { return raw.port; }
    void port(ushort p) @property @safe { raw.port = p; }
    /** The address bytes in network order: 4 for IPv4, 16 for IPv6. */
    const(ubyte)[] ip() const @property return @safe {
        return raw.family == Family.inet ? raw.ip[0 .. 4] : raw.ip[];
    }

    /** "1.2.3.4:80" or "[::1]:80". */
    string toString() const @trusted {
        char[64] buf;
        int n = ioq_raw.ioq_addr_format(&raw, buf.ptr, buf.length);
        if (n < 0)
            return "<" ~ errorName(n) ~ ">";
        return buf[0 .. n].idup;
    }

    bool opEquals(const Address o) const @safe {
        return raw.family == o.raw.family && raw.port == o.raw.port
            && raw.scope_id == o.raw.scope_id && raw.ip == o.raw.ip;
    }

    size_t toHash() const nothrow @safe {
        return hashOf(raw.ip, hashOf(raw.port, raw.family));
    }
}
