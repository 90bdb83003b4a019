cimport cython

@cython.locals(count=Py_ssize_t, start=Py_ssize_t, ids=str, ids_bytes=bytes, drawn=list, trace_id=str, span_id=str, span_bytes=bytes)
cdef _draw_new_traces()

cdef bint _COMPILED

@cython.locals(size=Py_ssize_t, index=Py_ssize_t, char=int)
cpdef bint may_carry_context(bytes head) except -1
