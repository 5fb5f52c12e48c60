"""Drives a running `weir standalone` with the official apache-airflow-client.

Usage: python client_check.py HOST USERNAME PASSWORD WORKDIR
Exits non-zero (with the failing step) when any call fails or a response
lacks a field the client requires.
"""

import json
import sys
import time
import urllib.request

import airflow_client.client as af
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.pool_api import PoolApi
from airflow_client.client.api.import_error_api import ImportErrorApi
from airflow_client.client.api.monitor_api import MonitorApi
from airflow_client.client.api.task_api import TaskApi
from airflow_client.client.api.version_api import VersionApi
from airflow_client.client.api.backfill_api import BackfillApi
from airflow_client.client.api.dag_stats_api import DagStatsApi
from airflow_client.client.api.dag_source_api import DagSourceApi
from airflow_client.client.api.event_log_api import EventLogApi
from airflow_client.client.api.asset_api import AssetApi
from airflow_client.client.api.connection_api import ConnectionApi
from airflow_client.client.models.create_asset_events_body import CreateAssetEventsBody
from airflow_client.client.api.variable_api import VariableApi
from airflow_client.client.models.connection_body import ConnectionBody
from airflow_client.client.api.x_com_api import XComApi
from airflow_client.client.models.variable_body import VariableBody
from airflow_client.client.models.patch_task_instance_body import PatchTaskInstanceBody
from airflow_client.client.models.task_instance_state import TaskInstanceState
from airflow_client.client.models.dag_runs_batch_body import DAGRunsBatchBody
from airflow_client.client.models.task_instances_batch_body import TaskInstancesBatchBody
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from airflow_client.client.models.clear_task_instances_body import ClearTaskInstancesBody
from airflow_client.client.models.clear_task_instances_body_task_ids_inner import (
    ClearTaskInstancesBodyTaskIdsInner,
)

host, username, password, workdir = sys.argv[1:5]


def step(name):
    print(f"-- {name}", flush=True)


def login():
    req = urllib.request.Request(
        f"{host}/auth/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201, resp.status
        return json.load(resp)["access_token"]


def wait_run(runs, dag_id, run_id, deadline=60):
    end = time.time() + deadline
    while time.time() < end:
        run = runs.get_dag_run(dag_id, run_id)
        if run.state.value in ("success", "failed"):
            return run
        time.sleep(0.3)
    raise SystemExit(f"run {run_id} did not finish in {deadline}s")


step("version, without a token")
with af.ApiClient(af.Configuration(host=host)) as anonymous:
    assert VersionApi(anonymous).get_version().version, "a version"

step("log in")
config = af.Configuration(host=host, access_token=login())
with af.ApiClient(config) as client:
    dags, runs, tis = DAGApi(client), DagRunApi(client), TaskInstanceApi(client)

    step("health")
    health = MonitorApi(client).get_health()
    assert health.metadatabase.status == "healthy", health

    step("list DAGs")
    listed = dags.get_dags(limit=100)
    ids = [d.dag_id for d in listed.dags]
    assert "flaky" in ids and listed.total_entries == len(ids), ids

    step("pause and unpause")
    assert dags.patch_dag("flaky", DAGPatchBody(is_paused=True)).is_paused is True
    assert dags.get_dag("flaky").is_paused is True
    assert dags.patch_dag("flaky", DAGPatchBody(is_paused=False)).is_paused is False
    details = dags.get_dag_details("flaky")
    assert details.dag_id == "flaky"

    step("tags, durations and tasks in Airflow's shapes")
    tagged = dags.get_dags(limit=100, tags=["client"])
    assert [d.dag_id for d in tagged.dags] == ["flaky"], tagged
    assert sorted(t.name for t in dags.get_dag("flaky").tags) == ["client", "example"]
    assert {t.dag_display_name for t in details.tags} == {"flaky"}, details.tags
    assert details.dag_run_timeout == "PT2H", details.dag_run_timeout
    task = TaskApi(client).get_task("flaky", "flaky")
    assert (task.retry_delay.seconds, task.execution_timeout.seconds) == (90, 600), task
    assert [t.task_id for t in TaskApi(client).get_tasks("flaky").tasks] == ["prepare", "flaky"]

    step("trigger with conf")
    marker = f"{workdir}/marker-{time.time_ns()}"
    run = runs.trigger_dag_run(
        "flaky", TriggerDAGRunPostBody(conf={"marker": marker}, logical_date=None)
    )
    assert run.conf == {"marker": marker}, run.conf
    run_id = run.dag_run_id

    step("wait for the run (its flaky task fails once)")
    done = wait_run(runs, "flaky", run_id)
    assert done.state.value == "failed", done.state
    waited = runs.wait_dag_run_until_finished("flaky", run_id, interval=0.1)
    assert waited == {"state": "failed"}, waited

    step("list runs, task instances and tries")
    assert run_id in [r.dag_run_id for r in runs.get_dag_runs("flaky", limit=10).dag_runs]
    found = runs.get_dag_runs("flaky", order_by=["-run_after"], run_id_pattern=run_id.upper(), logical_date_lt=None)
    assert [r.dag_run_id for r in found.dag_runs] == [run_id], found
    listed = tis.get_task_instances("flaky", run_id)
    states = {t.task_id: t.state.value for t in listed.task_instances}
    assert states == {"prepare": "success", "flaky": "failed"}, states
    tries = tis.get_task_instance_tries("flaky", run_id, "flaky")
    assert [t.try_number for t in tries.task_instances] == [1], tries

    step("read a log")
    log = tis.get_log("flaky", run_id, "flaky", 1)
    text = log.to_json()
    assert "leaving a marker" in text, text

    step("clearing without dry_run is a preview, as in Airflow")
    preview = tis.post_clear_task_instances(
        "flaky",
        ClearTaskInstancesBody(dag_run_id=run_id, task_ids=[ClearTaskInstancesBodyTaskIdsInner("flaky")]),
    )
    assert [t.task_id for t in preview.task_instances] == ["flaky"], preview
    assert runs.get_dag_run("flaky", run_id).state.value == "failed"

    step("clear the failed task")
    cleared = tis.post_clear_task_instances(
        "flaky",
        ClearTaskInstancesBody(dag_run_id=run_id, task_ids=[ClearTaskInstancesBodyTaskIdsInner("flaky")],
            only_failed=True, dry_run=False),
    )
    assert [t.task_id for t in cleared.task_instances] == ["flaky"], cleared

    step("the new try succeeds")
    done = wait_run(runs, "flaky", run_id)
    assert done.state.value == "success", done.state
    tries = tis.get_task_instance_tries("flaky", run_id, "flaky")
    assert [(t.try_number, t.state.value) for t in tries.task_instances] == [
        (1, "failed"),
        (2, "success"),
    ], tries
    log = tis.get_log("flaky", run_id, "flaky", 2)
    assert "the marker is there" in log.to_json()
    ti = tis.get_task_instance("flaky", run_id, "flaky")
    assert ti.try_number == 2 and ti.state.value == "success", ti

    step("set a task instance's state (dry run, then for real, then back)")
    body = PatchTaskInstanceBody(new_state=TaskInstanceState.FAILED)
    preview = tis.patch_task_instance_dry_run("flaky", run_id, "flaky", body)
    assert [t.task_id for t in preview.task_instances] == ["flaky"], preview
    assert tis.get_task_instance("flaky", run_id, "flaky").state.value == "success"
    marked = tis.patch_task_instance("flaky", run_id, "flaky", body)
    assert [(t.task_id, t.state.value) for t in marked.task_instances] == [("flaky", "failed")], marked
    assert runs.get_dag_run("flaky", run_id).state.value == "failed"
    tis.patch_task_instance("flaky", run_id, "flaky", PatchTaskInstanceBody(new_state=TaskInstanceState.SUCCESS))
    assert runs.get_dag_run("flaky", run_id).state.value == "success"

    step("list runs with a body")
    batch = runs.get_list_dag_runs_batch("~", DAGRunsBatchBody(dag_ids=["flaky"], states=["success"]))
    assert [r.dag_run_id for r in batch.dag_runs] == [run_id] and batch.total_entries == 1, batch
    slow = runs.get_list_dag_runs_batch("~", DAGRunsBatchBody(dag_ids=["flaky"], duration_gt=3600))
    assert slow.total_entries == 0, slow
    marked = runs.get_dag_runs("flaky", conf_contains=marker, duration_lt=3600)
    assert [r.dag_run_id for r in marked.dag_runs] == [run_id], marked

    step("deleting a run is refused: runs are history")
    try:
        runs.delete_dag_run("flaky", run_id)
        raise SystemExit("a run was deleted")
    except af.exceptions.ApiException as e:
        assert e.status == 409 and "PATCH" in (e.body or ""), e
    assert runs.get_dag_run("flaky", run_id).dag_run_id == run_id

    step("run counts and the DAG's source")
    stats = DagStatsApi(client).get_dag_stats(dag_ids=["flaky"])
    counts = {s.state.value: s.count for s in stats.dags[0].stats}
    assert counts == {"queued": 0, "running": 0, "success": 1, "failed": 0}, counts
    source = DagSourceApi(client).get_dag_source("flaky")
    assert "dag: flaky" in source.content and source.version_number == 1, source

    step("the audit log as event logs")
    logs = EventLogApi(client).get_event_logs(dag_id="flaky", event="trigger")
    assert [e.run_id for e in logs.event_logs] == [run_id], logs
    assert logs.event_logs[0].owner == username, logs
    assert EventLogApi(client).get_event_log(logs.event_logs[0].event_log_id).run_id == run_id

    step("task outputs as XCom entries")
    xcoms = XComApi(client)
    entries = xcoms.get_xcom_entries("flaky", run_id, "~")
    assert [(e.task_id, e.key, e.map_index) for e in entries.xcom_entries] == [("prepare", "return_value", -1)], entries
    entry = xcoms.get_xcom_entry("flaky", "prepare", run_id, "return_value").actual_instance
    assert entry.value == f"preparing {marker}", entry
    assert xcoms.get_xcom_entries("~", "~", "~", xcom_key="other").total_entries == 0

    step("an update from outside triggers the DAG scheduled on the asset")
    assets = AssetApi(client)
    feed = [a for a in assets.get_assets(name_pattern="vendor").assets]
    assert [a.name for a in feed] == ["raw.vendor_feed"], feed
    assert [d.dag_id for d in feed[0].scheduled_dags] == ["vendor_feed"], feed
    event = assets.create_asset_event(CreateAssetEventsBody(asset_id=feed[0].id, extra={"file": "f.csv"}))
    assert event.asset_id == feed[0].id and event.extra == {"file": "f.csv"}, event
    triggered = runs.get_dag_runs("vendor_feed")
    assert triggered.total_entries == 1 and triggered.dag_runs[0].run_type.value == "asset_triggered", triggered
    assert assets.get_asset(feed[0].id).last_asset_event.id == event.id

    step("mapped task instances, their logs and outputs")
    fan = runs.trigger_dag_run("fan_out", TriggerDAGRunPostBody(logical_date=None)).dag_run_id
    assert wait_run(runs, "fan_out", fan).state.value == "success"
    mapped = tis.get_mapped_task_instances("fan_out", fan, "load", order_by=["map_index"])
    assert [(t.map_index, t.rendered_map_index, t.state.value) for t in mapped.task_instances] == [
        (0, "a.csv", "success"), (1, "b.csv", "success")], mapped
    assert mapped.total_entries == 2, mapped
    one = tis.get_mapped_task_instance("fan_out", fan, "load", 1)
    assert (one.task_id, one.map_index) == ("load", 1), one
    assert [t.try_number for t in tis.get_mapped_task_instance_tries("fan_out", fan, "load", 1).task_instances] == [1]
    assert tis.get_mapped_task_instance_try_details("fan_out", fan, "load", 1, 1).map_index == 1
    log = tis.get_log("fan_out", fan, "load", 1, map_index=1, full_content=True)
    assert "loaded b.csv" in str(log), log
    value = xcoms.get_xcom_entry("fan_out", "load", fan, "return_value", map_index=0).actual_instance
    assert value.value == "loaded a.csv", value

    step("task instances listed with a body")
    batch = tis.get_task_instances_batch(
        "~", "~", TaskInstancesBatchBody(dag_ids=["flaky"], task_ids=["flaky"], order_by="-start_date")
    )
    assert batch.total_entries >= 1 and all(t.task_id == "flaky" for t in batch.task_instances), batch

    step("connections: create, read (secrets masked), patch, list, delete")
    connections = ConnectionApi(client)
    made = connections.post_connection(ConnectionBody(
        connection_id="warehouse", conn_type="postgres", host="db.local", port=5432, login="etl",
        var_schema="wh", password="hunter2", extra='{"sslmode": "require"}'))
    assert made.password == "***" and made.var_schema == "wh", made
    got = connections.get_connection("warehouse")
    assert (got.host, got.port, got.extra) == ("db.local", 5432, '{"sslmode":"require"}'), got
    patched = connections.patch_connection(
        "warehouse", ConnectionBody(connection_id="warehouse", conn_type="postgres", host="db2.local"),
        update_mask=["host"])
    assert patched.host == "db2.local" and patched.password == "***", patched
    listed = connections.get_connections(connection_id_pattern="ware")
    assert [c.connection_id for c in listed.connections] == ["warehouse"], listed
    connections.delete_connection("warehouse")
    assert connections.get_connections().total_entries == 0

    step("variables: create, read, patch, list, delete")
    variables = VariableApi(client)
    made = variables.post_variable(VariableBody(key="bucket", value="raw-eu", description="landing"))
    assert (made.key, made.value, made.is_encrypted) == ("bucket", "raw-eu", False), made
    variables.post_variable(VariableBody(key="limits", value={"n": 7}))
    assert json.loads(variables.get_variable("limits").value) == {"n": 7}
    secret = variables.post_variable(VariableBody(key="db_password", value="hunter2"))
    assert secret.value == "***", secret
    patched = variables.patch_variable(
        "bucket", VariableBody(key="bucket", value="raw-us"), update_mask=["value"]
    )
    assert (patched.value, patched.description) == ("raw-us", "landing"), patched
    listed = variables.get_variables(variable_key_pattern="b", order_by=["-key"])
    assert [v.key for v in listed.variables] == ["db_password", "bucket"], listed
    variables.delete_variable("db_password")
    assert "db_password" not in [v.key for v in variables.get_variables().variables]

    step("pools and import errors")
    assert "default" in [p.name for p in PoolApi(client).get_pools().pools]
    ImportErrorApi(client).get_import_errors()

    # Every read the client offers that weir serves, each answer checked by
    # the client's own model (a missing required field fails here).
    step("every read operation against the client's response models")
    reads = {
        "get_dags": lambda: dags.get_dags(limit=100),
        "get_dag": lambda: dags.get_dag("flaky"),
        "get_dag_details": lambda: dags.get_dag_details("flaky"),
        "get_tasks": lambda: TaskApi(client).get_tasks("flaky"),
        "get_task": lambda: TaskApi(client).get_task("flaky", "prepare"),
        "get_dag_runs": lambda: runs.get_dag_runs("flaky"),
        "get_dag_run": lambda: runs.get_dag_run("flaky", run_id),
        "get_task_instances": lambda: tis.get_task_instances("flaky", run_id),
        "get_task_instance": lambda: tis.get_task_instance("flaky", run_id, "flaky"),
        "get_task_instance_tries": lambda: tis.get_task_instance_tries("flaky", run_id, "flaky"),
        "get_task_instance_try_details": lambda: tis.get_task_instance_try_details("flaky", run_id, "flaky", 1),
        "get_log": lambda: tis.get_log("flaky", run_id, "flaky", 1),
        "get_pools": lambda: PoolApi(client).get_pools(),
        "get_pool": lambda: PoolApi(client).get_pool("default"),
        "get_import_errors": lambda: ImportErrorApi(client).get_import_errors(),
        "list_backfills": lambda: BackfillApi(client).list_backfills("flaky"),
        "get_dag_stats": lambda: DagStatsApi(client).get_dag_stats(),
        "get_event_logs": lambda: EventLogApi(client).get_event_logs(order_by=["-when"]),
        "get_variables": lambda: VariableApi(client).get_variables(),
        "get_connections": lambda: ConnectionApi(client).get_connections(),
        "get_assets": lambda: AssetApi(client).get_assets(),
        "get_asset_events": lambda: AssetApi(client).get_asset_events(),
        "get_variable": lambda: VariableApi(client).get_variable("bucket"),
        "get_dag_source": lambda: DagSourceApi(client).get_dag_source("flaky"),
        "get_xcom_entries": lambda: XComApi(client).get_xcom_entries("~", "~", "~"),
        "get_xcom_entry": lambda: XComApi(client).get_xcom_entry("flaky", "prepare", run_id, "return_value"),
        "get_mapped_task_instances": lambda: tis.get_mapped_task_instances("fan_out", fan, "load"),
        "get_mapped_task_instance": lambda: tis.get_mapped_task_instance("fan_out", fan, "load", 0),
        "get_health": lambda: MonitorApi(client).get_health(),
        "get_version": lambda: VersionApi(client).get_version(),
    }
    for name, read in reads.items():
        try:
            answer = read()
        except Exception as e:  # the client's model refused the answer
            raise SystemExit(f"{name}: {e}")
        assert answer is not None, name

print("the official Airflow client works against weir")
