@point_in_time_restore @severity:critical @owner:dba
Feature: Point-in-time restore after a destructive change
  A bulk delete on the primary replicates to the DR region as faithfully as any trade, so no
  failover can undo it: the firm must restore the books from its base backup and WAL archive
  to just before the change, know how long that takes, and recover every deleted record.

  Scenario: a bulk delete is undone by a restore to just before it
    Given a base backup of us-east-1 is taken
    When a bulk delete removes 10 % of the documents on us-east-1
    And replication copies the delete to us-west-2
    Then the delete had reached the standby
    When a cluster is restored from the base backup and the WAL archive to just before the delete
    Then the restored cluster held every document of the snapshot
    When the deleted documents are copied back to us-east-1
    Then the compared databases and indexes held the same ids and content hashes
