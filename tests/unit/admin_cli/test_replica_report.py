"""``ops/hotpath``'s replicas table: per-instance gauges are counted, not summed; reads are summed."""

from __future__ import annotations

from app.admin_cli.hotpath import parse_metrics, total
from app.admin_cli.replica_report import replica_rows


def _instance(*, r2_up: int, r2_lag: float, r2_eligible: int, reads: tuple[int, int]) -> str:
    return f"""# TYPE catalog_replica_up gauge
catalog_replica_up{{replica="replica-1"}} 1
catalog_replica_up{{replica="replica-2"}} {r2_up}
# TYPE catalog_replica_lag_seconds gauge
catalog_replica_lag_seconds{{replica="replica-1"}} 0.01
catalog_replica_lag_seconds{{replica="replica-2"}} {r2_lag}
# TYPE catalog_replica_eligible gauge
catalog_replica_eligible{{replica="replica-1"}} 1
catalog_replica_eligible{{replica="replica-2"}} {r2_eligible}
# TYPE catalog_replica_reads_total counter
catalog_replica_reads_total{{replica="replica-1"}} {reads[0]}
catalog_replica_reads_total{{replica="replica-2"}} {reads[1]}
"""


def test_each_replica_as_the_instances_see_it_with_its_share_of_reads() -> None:
    instances = [
        parse_metrics(_instance(r2_up=1, r2_lag=4.5, r2_eligible=0, reads=(30, 10))),  # replica-2 lags
        parse_metrics(_instance(r2_up=0, r2_lag=-1, r2_eligible=0, reads=(50, 10))),  # replica-2 down here
    ]
    first, second = replica_rows(instances, total(instances))
    assert (first.replica, first.up, first.eligible, first.instances) == ("replica-1", 2, 2, 2)
    assert (first.reads, first.read_share) == (80, 0.8)
    assert (second.replica, second.up, second.eligible, second.lag_s) == ("replica-2", 1, 0, 4.5)
    assert second.reads == 20
