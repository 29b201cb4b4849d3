@rpo_breach @negative_control @severity:critical @owner:dba
Feature: RPO breach control
  When replication stops while the primary keeps acknowledging trades, losing the primary
  loses those trades: the drill must measure that loss as an RPO breach of about the cut's
  length and list every lost acknowledged write, or its RPO verdicts cannot be trusted.

  Scenario: the replication link is cut for longer than the RPO objective, then the primary crashes
    Given the RPO objective is 5 seconds
    And a writer and a probe run through the public name
    When the replication link from us-east-1 to us-west-2 is cut
    And writes continue for 8 seconds
    And the primary database in us-east-1 crashes
    And the operator forces a failover to us-west-2
    And writes continue for 2 seconds
    Then the RPO is reported as a breach of about the cut's length on us-west-2
