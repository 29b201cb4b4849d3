@replication_link @severity:normal @owner:dba
Feature: Replication link cut and heal
  When the cross-region link drops, the DR copy of the books stops advancing: once the link
  is back the standby must catch up by itself, and the drill measures how long that takes;
  when the cut outlasted the primary's WAL retention for the standby, the drill must report
  that the standby needs a rebuild (not a slow catch-up), rebuild it and see it catch up.

  Scenario: a 5-second cut heals and the standby catches up
    Given a writer and a probe run through the public name
    When the replication link from us-east-1 to us-west-2 is cut
    And writes continue for 5 seconds
    And the faults heal
    And the replication lag is watched until it drains, for up to 30 seconds
    Then the standby caught up within 10 seconds

  Scenario: a cut that outlasts the slot's WAL retention forces a rebuild of the standby
    When the replication link from us-east-1 to us-west-2 is cut
    And the primary in us-east-1 writes 200 MB of WAL
    And the faults heal
    And replication is watched for 5 seconds
    Then the standby was reported as needing a rebuild
    When the standby in us-west-2 is rebuilt from us-east-1
    And the replication lag is watched until it drains, for up to 30 seconds
    Then the standby caught up within 30 seconds
