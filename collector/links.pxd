cimport cython

@cython.locals(local=dict, remote=dict, tags=dict)
cpdef object link_span(dict span)

@cython.locals(links=list, index=Py_ssize_t, kind=str, is_error=bint)
cpdef list trace_links(object spans)

@cython.locals(totals=dict, counts=list)
cpdef dict aggregate(object links)
