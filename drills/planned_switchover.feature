@planned_switchover @severity:normal @owner:dba
Feature: Planned switchover to us-west-2
  Moving the desk to us-west-2 on purpose (maintenance, a regional risk) must lose nothing:
  writes are quiesced, the standby replays everything, and only then is it promoted; every
  acknowledged trade is in us-west-2 afterwards.

  Scenario: quiesce, catch up, promote, switch, resume
    Given a writer and a probe run through the public name
    When writes are quiesced
    And the replication lag is watched until it drains, for up to 30 seconds
    And the operator runs a planned switchover to us-west-2
    And writes resume for 3 seconds
    Then no acknowledged write was lost on us-west-2
