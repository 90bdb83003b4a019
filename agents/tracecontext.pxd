cimport cython

cpdef object sample_key(str trace_id)

cdef bytes _new_trace_lines(bytes trace, bytes span, bint sampled)

@cython.locals(count=Py_ssize_t, start=Py_ssize_t, ids=str, ids_bytes=bytes, drawn=list, trace_id=str, span_id=str,
               trace_bytes=bytes, span_bytes=bytes)
cdef _draw_new_traces()

cdef bint _COMPILED

@cython.locals(size=Py_ssize_t, index=Py_ssize_t, char=int)
cpdef bint may_carry_context(bytes head) except -1
