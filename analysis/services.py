"""The services file (``MESHSCOPE_SERVICES_FILE``): what the data cannot tell about a service.

    defaults:                      # applies to every service not overriding it
      latency_objective_ms: 500    # the p99 objective the queueing model sizes for
    services:
      orders:
        stateful: false            # true: cannot scale horizontally (databases, in-memory sessions)
        latency_objective_ms: 200
        objective_quantile: 0.99
        workers_per_instance: 1    # requests one instance serves at once (M/M/c servers per instance)
        cpu_target: 0.7            # HPA target CPU utilisation (fraction of the CPU request / one core)
        rps_per_instance_target: 150   # HPA target throughput per instance (optional)
        min_instances: 1
        max_instances: 50
        memory_threshold: 0.8      # scale when an instance's RSS passes this share of its limit
        stabilisation_s: 300       # scale in only on the highest recommendation of this window
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from analysis import yamlfile
from analysis.errors import ServicesFileError


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    stateful: bool = False
    latency_objective_ms: float = 500.0
    objective_quantile: float = 0.99
    workers_per_instance: int = 1
    cpu_target: float = 0.7
    rps_per_instance_target: float | None = None
    min_instances: int = 1
    max_instances: int = 100
    memory_threshold: float = 0.8
    stabilisation_s: int = 300


_CHECKS = {
    "stateful": (bool, lambda v: True, "true or false"),
    "latency_objective_ms": ((int, float), lambda v: v > 0, "a positive number of ms"),
    "objective_quantile": ((int, float), lambda v: 0 < v < 1, "a number between 0 and 1"),
    "workers_per_instance": (int, lambda v: v >= 1, "an integer >= 1"),
    "cpu_target": ((int, float), lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "rps_per_instance_target": ((int, float), lambda v: v > 0, "a positive number"),
    "min_instances": (int, lambda v: v >= 0, "an integer >= 0"),
    "max_instances": (int, lambda v: v >= 1, "an integer >= 1"),
    "memory_threshold": ((int, float), lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "stabilisation_s": (int, lambda v: v >= 0, "an integer >= 0"),
}


@dataclass(slots=True)
class ServiceCatalog:
    defaults: ServiceSpec = field(default_factory=ServiceSpec)
    services: dict[str, ServiceSpec] = field(default_factory=dict)

    def spec(self, service: str) -> ServiceSpec:
        return self.services.get(service, self.defaults)


def _spec(path: Path, entry: object, base: ServiceSpec, where: str) -> ServiceSpec:
    if not isinstance(entry, dict):
        raise ServicesFileError(f"{path}:{yamlfile.line_of(entry)}: {where} must be a mapping")
    known = {f.name for f in fields(ServiceSpec)}
    values = {}
    for key, value in entry.items():
        line = yamlfile.line_of(entry, key)
        if key not in known:
            raise ServicesFileError(f"{path}:{line}: {where}: unknown field {key!r} (known: {', '.join(sorted(known))})")
        kind, valid, expected = _CHECKS[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind) or not valid(value):
            raise ServicesFileError(f"{path}:{line}: {where}.{key} must be {expected}, got {value!r}")
        values[key] = value
    spec = replace(base, **values)
    if spec.min_instances > spec.max_instances:
        raise ServicesFileError(f"{path}:{yamlfile.line_of(entry)}: {where}: min_instances > max_instances")
    return spec


def load_services(path: Path | None) -> ServiceCatalog:
    if path is None:
        return ServiceCatalog()
    data = yamlfile.load(path, ServicesFileError) or {}
    if not isinstance(data, dict):
        raise ServicesFileError(f"{path}:1: expected a mapping with `defaults` and `services`")
    unknown = set(data) - {"defaults", "services"}
    if unknown:
        key = sorted(unknown)[0]
        raise ServicesFileError(f"{path}:{yamlfile.line_of(data, key)}: unknown top-level key {key!r}")
    defaults = _spec(path, data.get("defaults") or yamlfile.Located(), ServiceSpec(), "defaults")
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise ServicesFileError(f"{path}:{yamlfile.line_of(data, 'services')}: `services` must map names to settings")
    return ServiceCatalog(defaults, {name: _spec(path, entry or yamlfile.Located(), defaults, f"services.{name}")
                                     for name, entry in services.items()})
