cimport cython

@cython.locals(local=dict, remote=dict, tags=dict)
cpdef object link_span(dict span)

cdef class TraceLinkSpans:
    cdef public object earliest_us
    cdef public set link_spans

@cython.locals(by_trace=dict, index=Py_ssize_t)
cpdef dict link_spans_by_trace(list spans, list received_us)

@cython.locals(trace=TraceLinkSpans)
cpdef add_link_span(dict by_trace, str trace_id, object ts_us, object span)

@cython.locals(unique=list, by_id=dict, parent_of=list, has_children=list, index=Py_ssize_t, parent=Py_ssize_t)
cdef object _tree(object spans)

@cython.locals(index=Py_ssize_t)
cdef Py_ssize_t _unshared(object candidates, list spans)

@cython.locals(index=Py_ssize_t)
cdef Py_ssize_t _pick_parent(object candidates, list spans, object child)

@cython.locals(seen=Py_ssize_t, current=Py_ssize_t)
cdef bint _is_ancestor(Py_ssize_t node, Py_ssize_t other, list parent_of) except -1

@cython.locals(current=Py_ssize_t)
cdef object _rpc_ancestor(Py_ssize_t index, object tree)

@cython.locals(links=list, index=Py_ssize_t, kind=str, is_error=bint)
cpdef list trace_links(object spans)

@cython.locals(totals=dict, counts=list)
cpdef dict aggregate(object links)
