@region_outage @severity:critical @owner:sre
Feature: Region outage with automated failover
  The trading desk's RAG service must survive the loss of us-east-1 and be writable again in
  us-west-2 within the 15-minute RTO, without losing acknowledged writes beyond the 60-minute
  RPO, with no one at the keyboard.

  Background:
    Given the RTO objective is 15 minutes
    And the RPO objective is 60 minutes

  Scenario: us-east-1 is cut off by its security group and the watcher fails over
    Given the watcher is on
    And a writer and a probe run through the public name
    When us-east-1 is cut off by its security group
    And the watcher fails over within 30 seconds
    And writes continue for 3 seconds
    Then the RTO is within its objective
    And the RTO is within the timing profile's budget
    And the RPO measured on us-west-2 is within its objective

  Scenario: the primary database in us-east-1 crashes and the watcher fails over
    Given the watcher is on
    And a writer and a probe run through the public name
    When the primary database in us-east-1 crashes
    And the watcher fails over within 30 seconds
    And writes continue for 3 seconds
    Then the RTO is within its objective
    And the RTO is within the timing profile's budget
    And the RPO measured on us-west-2 is within its objective
