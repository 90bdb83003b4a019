cimport cython

cdef bint _COMPILED

@cython.locals(char="Py_UCS4")
cdef bint _is_lower_hex(str text) except -1

@cython.locals(text=str)
cdef str _hex(object value, str what)

@cython.locals(trace_id=str)
cpdef str normalize_trace_id(object value)

@cython.locals(span_id=str)
cpdef str normalize_span_id(object value, str what=*)

cdef object _int(object value, str what)

cdef dict _endpoints

@cython.locals(fields=dict, key=tuple)
cpdef object normalize_endpoint(object raw)

@cython.locals(key=object, value=object)
cdef bint _all_strings(dict tags) except -1

@cython.locals(fields=dict, span=dict, trace_id=object, raw_span_id=object, span_id=str, parent=object, parent_id=str, tags=object, clean=dict, unique=set, annotations=object)
cpdef dict normalize_span(object raw)
