@dns_failover @severity:normal @owner:sre
Feature: DNS failover convergence
  After the public name is switched to us-west-2, clients that cached the old answer keep
  reaching us-east-1 until it expires: the drill measures that window against the record's
  TTL and shows that every client then reads from us-west-2.

  Scenario: a planned switchover under a 5-second TTL
    Given the public name's TTL is 5 seconds
    And 10 clients read through the public name, each with its own DNS cache
    When the operator runs a planned switchover to us-west-2
    And the clients keep reading for 4 seconds
    Then reads reached us-east-1 for at most the TTL plus 1 seconds after the DNS switch
    And every read after the TTL plus 1 seconds was answered by us-west-2
