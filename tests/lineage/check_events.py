"""Checks OpenLineage events, one JSON object per line of the file named
on the command line, against the models the OpenLineage Python client
generates from the official JSON Schema of the spec (2-0-2) and of each
facet: every key must be one the schema defines, every required key
present, every value of the schema's type, every `schemaURL` the one of
the spec version the client was generated from. Prints the number of
events checked; exits 1 naming the first problem."""

import json
import sys
import types
import typing

import attr
from openlineage.client.generated import (
    base,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
    storage_dataset,
)
from openlineage.client.serde import Serde

# The facets weir emits, by the key the spec gives them.
FACETS = {
    base.RunFacet: {
        "parent": parent_run.ParentRunFacet,
        "nominalTime": nominal_time_run.NominalTimeRunFacet,
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
        "errorMessage": error_message_run.ErrorMessageRunFacet,
    },
    base.JobFacet: {"jobType": job_type_job.JobTypeJobFacet, "sql": sql_job.SQLJobFacet},
    base.DatasetFacet: {
        "schema": schema_dataset.SchemaDatasetFacet,
        "version": dataset_version_dataset.DatasetVersionDatasetFacet,
        "storage": storage_dataset.StorageDatasetFacet,
    },
    base.InputDatasetFacet: {
        "dataQualityMetrics": data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet,
        "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
    },
    base.OutputDatasetFacet: {
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
    },
}


class Invalid(Exception):
    pass


def build(tp, value, where):
    """`value` as an instance of the type `tp`, checked."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (tp,) = [a for a in args if a is not type(None)]
        return build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected a list, got {value!r}")
        return [build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{where}: expected an object, got {value!r}")
        known = FACETS.get(args[1])
        out = {}
        for k, v in value.items():
            if known is not None:
                if k not in known:
                    raise Invalid(f"{where}.{k}: not a facet weir is known to emit")
                out[k] = build(known[k], v, f"{where}.{k}")
            else:
                out[k] = build(args[1], v, f"{where}.{k}")
        return out
    if isinstance(tp, type) and issubclass(tp, base.EventType):
        return base.EventType(value)
    if tp is typing.Any:
        return value
    if attr.has(tp):
        return build_attrs(tp, value, where)
    expected = {str: str, int: int, float: (int, float), bool: bool}[tp]
    if not isinstance(value, expected) or (tp is not bool and isinstance(value, bool)):
        raise Invalid(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def build_attrs(cls, value, where):
    if not isinstance(value, dict):
        raise Invalid(f"{where}: expected an object, got {value!r}")
    names = dict(vars(typing))
    for klass in reversed(cls.__mro__):
        names.update(vars(sys.modules[klass.__module__]))
    fields = {f.name: f for f in attr.fields(cls)}
    kwargs = {}
    for key, v in value.items():
        f = fields.get(key)
        if f is None:
            raise Invalid(f"{where}.{key}: the schema of {cls.__name__} has no such key")
        if not f.init:
            if key.endswith("schemaURL") and v != cls._get_schema():
                raise Invalid(f"{where}.{key}: {v} is not {cls._get_schema()}")
            continue
        tp = eval(f.type, names) if isinstance(f.type, str) else f.type  # noqa: S307
        kwargs[f.alias] = build(tp, v, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{where}: {cls.__name__}: {e}") from e


def prune(value):
    """`value` without nulls, empty objects and empty lists (the models'
    defaults)."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def main():
    count = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            event = json.loads(line)
            where = f"event {n} ({event.get('eventType')} {event.get('job', {}).get('name')})"
            if "_producer" not in json.dumps(event):
                raise Invalid(f"{where}: no facet")
            built = build_attrs(base.RunEvent, event, where)
            again = prune(Serde.to_dict(built))
            if again != prune(event):
                raise Invalid(f"{where}: does not survive a round trip through the models:\n{again}")
            count += 1
    print(count)


if __name__ == "__main__":
    try:
        main()
    except Invalid as e:
        print(e, file=sys.stderr)
        sys.exit(1)
