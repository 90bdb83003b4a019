cimport cython

cdef class Exchange:
    cdef public str method
    cdef public bytes target
    cdef public bytes head
    cdef public long long request_start_ns
    cdef public long long request_body_bytes
    cdef public int status
    cdef public long long response_start_ns
    cdef public long long response_end_ns
    cdef public long long response_body_bytes
    cdef public bint upgrade
    cdef public str outcome
    cdef public object tag

cdef class _RequestCallbacks:
    cdef HttpConversation conversation

cdef class _ResponseCallbacks:
    cdef HttpConversation conversation

cdef class HttpConversation:
    cdef public object on_request_head
    cdef public str state
    cdef public object pending
    cdef public list finished
    cdef public long long unmatched_responses
    cdef public str desync_reason
    cdef public object _request_parser
    cdef public object _response_parser
    cdef _RequestCallbacks _request_callbacks
    cdef _ResponseCallbacks _response_callbacks
    cdef public long long _now
    cdef public bytes _held
    cdef public bytes _head_buf
    cdef public bint _head_unheld
    cdef public bint _in_head
    cdef public bint _head_done
    cdef public Py_ssize_t _head_begin
    cdef public Py_ssize_t _piece_body
    cdef public bytes _target
    cdef public long long _request_begin_ns
    cdef public Exchange _request
    cdef public Exchange _response
    cdef public bint _interim
    cdef public bint _cut_response_at_head
    cdef public Py_ssize_t _special_pending
    cdef public bytes _response_held
    cdef public bint _response_in_head
    cdef public bytes _method

    # the per-chunk methods: C calls between them (feed_* stay callable from Python)
    @cython.locals(position=Py_ssize_t, size=Py_ssize_t, index=Py_ssize_t, end=Py_ssize_t, keep=Py_ssize_t)
    cpdef bytes feed_request(self, bytes data, long long now_ns)
    cdef bint _feed_piece(self, bytes piece, list out, bytes data, Py_ssize_t rest_at) except -1
    @cython.locals(begin=Py_ssize_t, unheld=bint)
    cdef _forward_piece(self, bytes piece, bint began_before, list out)
    cpdef feed_response(self, bytes data, long long now_ns)
    cdef _feed_response_piece(self, bytes piece)
    cdef _finish_response(self, Exchange exchange, str outcome)
