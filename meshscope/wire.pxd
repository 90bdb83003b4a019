cimport cython
from libc.stdint cimport uint32_t

cdef uint32_t _MURMUR2_SEED, _MURMUR2_M, _MASK32

@cython.locals(length=Py_ssize_t, tail=Py_ssize_t, extra=Py_ssize_t, i=Py_ssize_t, h=uint32_t, k=uint32_t)
cpdef uint32_t murmur2(bytes key) except? 0

cdef bytes _id_bytes(str hex_id, Py_ssize_t width)

@cython.locals(out=bytearray)
cdef bytes _varint(unsigned long long n)

cdef bytes _length_delimited(bytes tag, bytes payload)

@cython.locals(cache_key=tuple, encoded=bytes, any_value=bytes)
cdef bytes _attribute_field(bytes tag, str key, object value)

cdef dict _SPAN_STRING_ATTRIBUTES, _NAME_FIELDS, _ATTRIBUTE_CACHE, _KIND_FIELD
cdef list _SMALL_VARINTS
cdef Py_ssize_t _span_string_attribute_count

@cython.locals(by_value=dict, encoded=bytes)
cdef bytes _span_string_attribute(str key, str value)

@cython.locals(encoded=bytes)
cdef bytes _name_field(str name)

@cython.locals(trace_id=str, parts=list, tags=dict, remote=dict, event=bytes, message=str, status=bytes, annotation=dict)
cdef bytes _span_bytes(dict span)

@cython.locals(endpoint_keys=dict, span=dict, local=dict, fields=tuple, endpoint=tuple, out=list, span_fields=list, resource=bytes)
cpdef bytes encode_spans(object spans)

@cython.locals(tags=dict)
cpdef bint round_trips(dict span) except -1
