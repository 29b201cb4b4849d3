@replication_link @severity:normal @owner:dba
Feature: No planned switchover over a cut replication link
  A planned switchover promises to lose nothing, so it must not start while the standby
  cannot see the primary's latest trades: with the replication link cut the pre-flight
  must refuse and say why, and once the link heals the standby must catch up by itself
  and the pre-flight must be ready again.

  Background:
    Given the planned switchover's lag threshold is 2 seconds

  Scenario: the pre-flight refuses while the link is cut and is ready after the heal
    Given a writer and a probe run through the public name
    When the replication link from us-east-1 to us-west-2 is cut
    And writes continue for 5 seconds
    And the planned pre-flight runs
    Then the pre-flight refused because of replication
    When the faults heal
    And writes are quiesced
    And the replication lag is watched until it drains, for up to 30 seconds
    And the planned pre-flight runs
    Then the pre-flight was ready
    And the standby caught up within 30 seconds
