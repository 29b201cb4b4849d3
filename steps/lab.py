"""Steps that set a drill up and break the lab: objectives, workload, faults."""

from __future__ import annotations

from pytest_bdd import parsers

from drkit.drill import Drill
from drkit.errors import ConfigError
from drkit.faults.lab import (
    LinkCut,
    PrimaryCrash,
    ReplayPause,
    SecurityGroupBlock,
    check_service,
    lab_params,
)
from drkit.lab.topology import check_proxy, check_region, check_source, replication_link
from steps.registry import check_blips, given, in_range, when


@given(
    parsers.parse("the RTO objective is {minutes:d} minutes"),
    example="Given the RTO objective is 15 minutes",
)
def rto_objective(drill: Drill, minutes: int) -> None:
    """The regulatory recovery time objective the RTO verdict is judged against."""
    if minutes <= 0:
        raise ConfigError(f"RTO objective {minutes} minutes: use a positive number of minutes")
    drill.objectives.rto_s = minutes * 60.0


@given(
    parsers.parse("the RPO objective is {minutes:d} minutes"),
    example="Given the RPO objective is 60 minutes",
)
def rpo_objective(drill: Drill, minutes: int) -> None:
    """The recovery point objective the RPO verdict is judged against."""
    if minutes <= 0:
        raise ConfigError(f"RPO objective {minutes} minutes: use a positive number of minutes")
    drill.objectives.rpo_s = minutes * 60.0


@given(
    parsers.parse("the RPO objective is {seconds:d} seconds"),
    example="Given the RPO objective is 5 seconds",
)
def rpo_objective_seconds(drill: Drill, seconds: int) -> None:
    """A small RPO objective, for drills that must see it breached."""
    if seconds <= 0:
        raise ConfigError(f"RPO objective {seconds} seconds: use a positive number of seconds")
    drill.objectives.rpo_s = float(seconds)


@given("the watcher is on", example="Given the watcher is on")
def watcher_on(drill: Drill) -> None:
    """The failover automation under test watches the primary region. On the aws target its
    failover (promotion, Route 53 UPSERT) goes through the AWS APIs of the config; with
    `automation = "external"` the organisation's own automation is under test, and the drill
    only observes it (drkit's watcher stays off)."""
    if drill.aws is not None and drill.aws.config.automation == "external":
        drill.observe_external_automation()
        return
    drill.env.watcher.start(drill.aws.config.path if drill.aws is not None else None)


@given(
    "a writer and a probe run through the public name",
    example="Given a writer and a probe run through the public name",
)
def workload(drill: Drill) -> None:
    """20 acknowledged writes and 20 reads a second, resolved through drkit's resolver."""
    drill.start_workload()
    drill.wait_for(
        lambda: len(drill.writer.recent_acked(5)) >= 5 if drill.writer else False,
        10,
        "five acknowledged writes before the disaster",
    )


@when(
    parsers.parse("{region} is cut off by its security group"),
    example="When us-east-1 is cut off by its security group",
)
def security_group_outage(drill: Drill, region: str) -> None:
    """The disaster: every ingress rule of the region's group revoked (traffic blackholed).
    On the aws target: every rule of the region's declared groups, through the EC2 API,
    after the blast-radius and market-hours interlocks."""
    region = check_region(region)
    if drill.aws is not None:
        first, *rest = drill.aws.region_outage(region)
        drill.inject(first, disaster=True)
        for fault in rest:
            drill.inject(fault)
        return
    drill.inject(SecurityGroupBlock(**lab_params(drill.lab), region=region), disaster=True)


@when(
    parsers.parse("the replication link from {primary} to {standby} is cut"),
    example="When the replication link from us-east-1 to us-west-2 is cut",
)
def replication_link_cut(drill: Drill, primary: str, standby: str) -> None:
    """Blackhole the standby's path to the primary (not the disaster: writes go on)."""
    link = replication_link(
        check_region(primary), check_region(standby), drill.lab.settings.ports.postgres
    )
    drill.inject(LinkCut(**lab_params(drill.lab), proxy=link.name))


@when(
    parsers.parse("the operator forces a failover to {region}"),
    example="When the operator forces a failover to us-west-2",
)
def operator_forced_failover(drill: Drill, region: str) -> None:
    """The runbook's failover, past a refusing pre-flight (recorded as forced)."""
    if check_region(region) != "us-west-2":
        raise ConfigError(f"failover to {region}: the lab fails over to us-west-2")
    drill.operator_failover("runbook: forced failover after losing us-east-1", force=True)


@when(
    parsers.parse("the primary database in {region} crashes"),
    example="When the primary database in us-east-1 crashes",
)
def primary_crash(drill: Drill, region: str) -> None:
    """The disaster: the region's PostgreSQL stops at once (no shutdown checkpoint). On the
    aws target: its EC2 instance stopped hard (self-managed) or an RDS reboot, behind the
    interlocks."""
    drill.sample_replication()  # the last sample before the failure, for the pre-flight
    region = check_region(region)
    if drill.aws is not None:  # the instance stopped hard, or an RDS reboot
        drill.inject(drill.aws.primary_crash(region), disaster=True)
        return
    drill.inject(PrimaryCrash(**lab_params(drill.lab), region=region), disaster=True)


@when(
    parsers.parse("the watcher fails over within {seconds:d} seconds"),
    example="When the watcher fails over within 30 seconds",
)
def watcher_fails_over(drill: Drill, seconds: int) -> None:
    """Wait for the watcher's own failover (a timeout is an RTO breach, not a sleep). With
    `automation = "external"` on the aws target: for the DR database to be a primary, the
    public record to point at the DR service, and a write through the public name to be
    acknowledged by the DR region (the promotion and record change marked when seen)."""
    if drill.aws is not None and drill.aws.config.automation == "external":
        drill.await_external_failover(float(seconds))
        return
    state = drill.await_watcher_failover(float(seconds))
    if state.get("state") != "failed_over":
        failover = state.get("failover") or {}
        why = "; ".join(failover.get("errors") or []) or "no error recorded"
        raise TimeoutError(
            f"the watcher's failover failed: {why} (its full account is in the drill's "
            "evidence: watcher status and ledger)"
        )


@when(
    parsers.parse("writes continue for {seconds:d} seconds"),
    example="When writes continue for 3 seconds",
)
def writes_continue(drill: Drill, seconds: int) -> None:
    """Keep the workload running; this window is measured."""
    in_range(seconds, 1, 600, "seconds of writes")
    drill.run_for(float(seconds))


@when("the faults heal", example="When the faults heal")
def faults_heal(drill: Drill) -> None:
    """Heal every open fault, newest first, each read back."""
    drill.heal_all()


@given("the watcher is off", example="Given the watcher is off")
def watcher_off(drill: Drill) -> None:
    """No failover automation: recovery waits for an operator (a negative control's setting)."""
    drill.env.watcher.stop()  # returns once its process is gone (or raises, naming it)


@when(
    parsers.parse("the operator forces a failover to {region} without fencing {old}"),
    example="When the operator forces a failover to us-west-2 without fencing us-east-1",
)
def unfenced_failover(drill: Drill, region: str, old: str) -> None:
    """Negative controls only: a failover that leaves the old region's service unfenced."""
    if check_region(region) != "us-west-2" or check_region(old) != "us-east-1":
        raise ConfigError(f"failover to {region} from {old}: the lab fails over to us-west-2")
    drill.operator_failover("negative control: failover without fencing", force=True, fence=False)


@when(
    parsers.parse("writes are sent straight to {region}'s service for {seconds:d} seconds"),
    example="When writes are sent straight to us-east-1's service for 2 seconds",
)
def direct_writes(drill: Drill, region: str, seconds: int) -> None:
    """20 writes a second to the region's own address, past DNS: what a client with a stale
    answer, or a job configured with the old endpoint, would send."""
    in_range(seconds, 1, 600, "seconds of direct writes")
    drill.write_directly(check_region(region), float(seconds))


@when(
    parsers.parse("{region}'s security group stops admitting {service} traffic from {source}"),
    example="When us-west-2's security group stops admitting api traffic from public",
)
def security_group_port_block(drill: Drill, region: str, service: str, source: str) -> None:
    """One ingress rule revoked (one service's port from one source), not the disaster."""
    drill.inject(
        SecurityGroupBlock(
            **lab_params(drill.lab),
            region=check_region(region),
            services=[check_service(service)],
            sources=[check_source(source)],
        )
    )


@when(
    parsers.parse("WAL replay is paused on {region}"),
    example="When WAL replay is paused on us-west-2",
)
def replay_paused(drill: Drill, region: str) -> None:
    """The standby keeps receiving WAL and applies none of it (read back from the standby)."""
    drill.inject(ReplayPause(**lab_params(drill.lab), region=check_region(region)))


@when("writes are quiesced", example="When writes are quiesced")
def quiesce(drill: Drill) -> None:
    """The writer stops and its writes in flight complete (the probe keeps reading)."""
    drill.quiesce_writes()


@when(
    parsers.parse("writes resume for {seconds:d} seconds"),
    example="When writes resume for 3 seconds",
)
def resume(drill: Drill, seconds: int) -> None:
    """A new writer through the public name, as the desk's clients reconnect."""
    in_range(seconds, 1, 600, "seconds of resumed writes")
    drill.resume_writes()
    drill.run_for(float(seconds))


@when(
    parsers.parse("the operator runs a planned switchover to {region}"),
    example="When the operator runs a planned switchover to us-west-2",
)
def planned_switchover(drill: Drill, region: str) -> None:
    """The runbook's planned switchover: pre-flight (must be ready), fence, promote, switch."""
    if check_region(region) != "us-west-2":
        raise ConfigError(f"switchover to {region}: the lab switches over to us-west-2")
    drill.operator_failover("runbook: planned switchover", force=False, mode="planned")


@when(
    parsers.parse(
        "{region} is cut off by its security group for {ms:d} milliseconds, {times:d} times, "
        "{gap:d} seconds apart"
    ),
    example="When us-east-1 is cut off by its security group for 400 milliseconds, 3 times, "
    "2 seconds apart",
)
def blips(drill: Drill, region: str, ms: int, times: int, gap: int) -> None:
    """Short region outages (a flapping primary), each healed and read back; the watcher's
    state is sampled throughout."""
    check_blips(ms, times, gap)
    region = check_region(region)
    drill.blips(
        lambda: SecurityGroupBlock(**lab_params(drill.lab), region=region),
        ms / 1000,
        times,
        float(gap),
    )


@given(
    parsers.parse("the public name's TTL is {ttl:d} seconds"),
    example="Given the public name's TTL is 5 seconds",
)
def public_ttl(drill: Drill, ttl: int) -> None:
    """The public record's TTL, set in Route 53 and read back (the lab's reset restores it)."""
    if not 0 < ttl <= 3600:
        raise ConfigError(f"TTL {ttl} seconds: use 1 to 3600 seconds")
    drill.set_public_ttl(ttl)


@given(
    parsers.parse("{count:d} clients read through the public name, each with its own DNS cache"),
    example="Given 10 clients read through the public name, each with its own DNS cache",
)
def reading_clients(drill: Drill, count: int) -> None:
    """Clients reading 20 times a second, each resolving through its own TTL-honouring cache,
    started over one TTL so their cached answers expire at different moments."""
    if not 0 < count <= 50:
        raise ConfigError(f"{count} clients: use 1 to 50")
    drill.start_clients(count)


@when(
    parsers.parse("the clients keep reading for {seconds:d} seconds"),
    example="When the clients keep reading for 8 seconds",
)
def keep_reading(drill: Drill, seconds: int) -> None:
    """Let the clients read on; this window is measured."""
    in_range(seconds, 1, 600, "seconds of reading")
    drill.run_for(float(seconds))


@when(
    parsers.parse("the fence on {region} is lifted"),
    example="When the fence on us-east-1 is lifted",
)
def lift_fence(drill: Drill, region: str) -> None:
    """Failback only: the fence this drill's failover put on the region is undone, read back."""
    drill.lift_fence(check_region(region))


@when(
    parsers.parse("the operator fails back from {frm} to {to}"),
    example="When the operator fails back from us-west-2 to us-east-1",
)
def fail_back(drill: Drill, frm: str, to: str) -> None:
    """A planned switchover home: pre-flight (must be ready), fence, promote, switch, verify."""
    frm, to = check_region(frm), check_region(to)
    if frm == to:
        raise ConfigError(f"failback from {frm} to {to}: name two different regions")
    drill.failback(to, frm)


@when(
    parsers.parse(
        "the path {proxy} is blackholed for {ms:d} milliseconds, {times:d} times, "
        "{gap:d} seconds apart"
    ),
    example="When the path us-east-1.api.from-public is blackholed for 300 milliseconds, "
    "3 times, 2 seconds apart",
)
def path_blips(drill: Drill, proxy: str, ms: int, times: int, gap: int) -> None:
    """Short blackholes of one path (a flapping link or endpoint), each healed and read
    back, the watcher's state sampled throughout; Toxiproxy makes them sharper than a
    security-group change can."""
    check_blips(ms, times, gap)
    check_proxy(proxy)
    drill.blips(lambda: LinkCut(**lab_params(drill.lab), proxy=proxy), ms / 1000, times, float(gap))
