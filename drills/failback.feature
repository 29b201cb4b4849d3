@failback @severity:critical @owner:dba
Feature: Failback to us-east-1
  After a disaster the desk runs on us-west-2; going home must keep the books whole: the
  acknowledged trades that only the old primary held are exported into the evidence before it
  is rewound, replication is re-established from us-west-2, and a planned switchover brings
  the desk home with every database and index agreeing.

  Scenario: a crash strands writes on us-east-1, the desk fails over, then fails back
    Given a writer and a probe run through the public name
    When the replication link from us-east-1 to us-west-2 is cut
    And writes continue for 2 seconds
    And the primary database in us-east-1 crashes
    And the operator forces a failover to us-west-2
    And writes continue for 3 seconds
    And writes are quiesced
    And the database and index of us-west-2 are compared
    Then the compared databases and indexes held the same ids and content hashes
    When the faults heal
    And the writes only us-east-1 holds are exported into the evidence
    And us-east-1 is rewound to follow us-west-2
    And the us-east-1 index is reconciled with its database
    Then the export held every acknowledged write us-west-2 lacked
    When the fence on us-east-1 is lifted
    And the operator fails back from us-west-2 to us-east-1
    And writes resume for 3 seconds
    And writes are quiesced
    And us-west-2 is rewound to follow us-east-1
    And the us-west-2 index is reconciled with its database
    And both regions' databases and indexes are compared
    Then the compared databases and indexes held the same ids and content hashes
