@reads_after_failover @severity:normal @owner:sre
Feature: Reads after the failover
  Once the desk is on us-west-2, an analyst who just filed a note must find it, no answer may
  come from the demoted region or forget what an earlier answer showed, and the service's
  errors must end soon after its first answer (its pooled connections recover).

  Scenario: reads see their writes and the error tail is short after the watcher's failover
    Given the watcher is on
    And a writer and a probe run through the public name
    When us-east-1 is cut off by its security group
    And the watcher fails over within 30 seconds
    And writes continue for 5 seconds
    Then every read after the promotion saw the writes acknowledged before it
    And no read after the promotion was stale
    And errors stopped within 3 seconds of the new primary's first answer
