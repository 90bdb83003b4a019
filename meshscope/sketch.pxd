cdef class LatencySketch:
    cdef public int scale
    cdef public dict buckets
    cdef public long long zero_count
    cdef public long long count
    cdef public double sum
    cdef public double min
    cdef public double max
    cpdef add(self, double value)
