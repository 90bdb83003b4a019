cimport cython
from agents.http_parser cimport Exchange, HttpConversation
from agents.tracecontext cimport may_carry_context

cdef class HttpObserver:
    cdef public object context
    cdef public object telemetry
    cdef public HttpConversation conversation
    cdef public bint inbound
    cdef public str kind
    cdef public dict client
    cdef public bint propagate
    cdef public double _slow_ms
    cdef public bint _counted_desync
    cdef public object _add
    cdef public object _cap
    cdef public object _started
    cdef public object _finished
    cdef public str _remote
    cdef public object _known
    cdef public object _sample_below
    cdef public object _defer

    cdef void _finish(self, Exchange exchange)
    @cython.locals(state=tuple, status=int, duration_ns="long long", duration_ms=double, error=bint)
    cpdef account(self, Exchange exchange)
