@finra_quarterly @severity:critical @owner:compliance
Feature: The quarterly FINRA Rule 4370 business-continuity test
  Each quarter the compliance team files proof that the trading desk's research service fails
  over to us-west-2 within its objectives and comes home whole: this is that procedure, from
  the pre-test verification to the report, with every figure measured.

  Background:
    Given the RTO objective is 15 minutes
    And the RPO objective is 60 minutes

  Scenario: primary failure, automated response, DR verification, failback, report
    Given the primary in us-east-1 is healthy and replication lag is under 5 seconds
    And the baseline document count and query latency are recorded
    And the watcher is on
    And a writer and a probe run through the public name
    When the primary database in us-east-1 crashes
    And the watcher fails over within 30 seconds
    And writes continue for 3 seconds
    And a test query is sent through the public name
    And query latency is measured again
    Then the test query was answered by us-west-2
    And query latency stayed within 20 times the baseline p95
    And the RTO is within its objective
    And the RTO is within the timing profile's budget
    And the RPO measured on us-west-2 is within its objective
    When the database and index of us-west-2 are compared
    Then the compared databases and indexes held the same ids and content hashes
    When the faults heal
    And the writes only us-east-1 holds are exported into the evidence
    And us-east-1 is rewound to follow us-west-2
    And the us-east-1 index is reconciled with its database
    And the fence on us-east-1 is lifted
    And the operator fails back from us-west-2 to us-east-1
    And us-west-2 is rewound to follow us-east-1
    And the us-west-2 index is reconciled with its database
    And both regions' databases and indexes are compared
    Then the compared databases and indexes held the same ids and content hashes
    When the quarterly compliance report is written
    Then the compliance report states the measured RTO and RPO
