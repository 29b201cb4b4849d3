@replication_lag @severity:normal @owner:dba
Feature: Replication lag under a slow, narrow cross-region link
  When the link between the regions slows while trades keep arriving, the DR copy of the
  books falls behind: the lag must be measured, its alarm must fire, a planned switchover
  must refuse to go while it would leave trades behind (and say why), and the lag must drain
  once the link recovers.

  Background:
    Given the planned switchover's lag threshold is 2 seconds

  Scenario Outline: <size> KB of documents over a replication link with latency and a 16 KB/s limit
    When the replication link from us-east-1 to us-west-2 gets 300 ms of latency with 50 ms of jitter
    And the replication link from us-east-1 to us-west-2 is limited to 16 KB/s
    And <size> KB of documents are written through the public name
    And the replication lag is watched until it exceeds 5 seconds, for up to 40 seconds
    And the planned pre-flight runs
    And the replication lag is watched until its alarm fires, for up to 60 seconds
    Then the replication lag rose above the alarm threshold
    And the replication lag alarm fired
    And the pre-flight refused because of replication lag
    When the faults heal
    And the replication lag is watched until it drains, for up to 30 seconds
    And the planned pre-flight runs
    Then the replication lag fell back below 2 seconds
    And the pre-flight was ready

    Examples:
      | size |
      | 512  |
      | 1024 |
