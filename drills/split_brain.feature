@split_brain @severity:critical @owner:sre
Feature: Split brain after a failover
  When us-east-1 comes back after the desk has failed over, its service must not take a
  single trade: every acknowledged write must live in the new primary in us-west-2, or the
  firm's books and records fork.

  Scenario: us-east-1 returns after the watcher's failover and its fenced service refuses writes
    Given the watcher is on
    And a writer and a probe run through the public name
    When us-east-1 is cut off by its security group
    And the watcher fails over within 30 seconds
    And the faults heal
    And writes are sent straight to us-east-1's service for 2 seconds
    Then no write sent straight to us-east-1 was acknowledged
    And no acknowledged write exists outside us-west-2's database
