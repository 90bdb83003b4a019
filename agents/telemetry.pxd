cdef class Recorder:
    cdef public str service, instance, version
    cdef public int interval_s
    cdef public double sample_rate
    cdef public object sample_below
    cdef public double slow_ms
    cdef public long long max_endpoints, max_queued_spans
    cdef public object _clock
    cdef public long long wall_offset_ns
    cdef public long long _current_start
    cdef public double _current_end
    cdef public dict _current
    cdef public object closed, spans, samples
    cdef public dict _endpoints, _inflight
    cdef public list pending
    cdef public bint track_inbound
    cdef public long long spans_dropped, requests, desynced, unparsed_bytes
    cdef public object propagate, mysql_options
