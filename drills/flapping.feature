@flapping @severity:normal @owner:sre
Feature: Flapping primary
  A primary that blinks for less than the detection window must not cost the desk a failover
  (with its fencing and DNS churn); one that stays unreachable past it must get one. The
  blinks cut the primary's public endpoint, which the watcher checks.

  Background:
    Given the RTO objective is 15 minutes

  Scenario: short outages are ridden out, a lasting one is failed over
    Given the watcher is on
    And a writer and a probe run through the public name
    When the path us-east-1.api.from-public is blackholed for 300 milliseconds, 3 times, 2 seconds apart
    Then the watcher rode out every blip shorter than its detection window
    When us-east-1 is cut off by its security group
    And the watcher fails over within 30 seconds
    And writes continue for 3 seconds
    Then the RTO is within its objective
    And the RTO is within the timing profile's budget
