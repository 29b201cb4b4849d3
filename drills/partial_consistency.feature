@partial_consistency @severity:critical @owner:search
Feature: Partial consistency of the DR index
  A failover onto an index that lacks part of the books, or holds outdated versions of it,
  answers the desk's research queries wrongly: the pre-flight must refuse such a failover and
  name how many vectors are missing or stale, and be ready once the index is reconciled.

  Scenario Outline: 5 % of the DR index's vectors are <mode>
    When 5 % of us-west-2's index vectors are <mode>
    And the planned pre-flight runs
    Then the pre-flight refused and named the drifted vectors
    When the us-west-2 index is reconciled with its database
    And the planned pre-flight runs
    Then the pre-flight was ready

    Examples:
      | mode    |
      | missing |
      | stale   |
