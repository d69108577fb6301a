"""What is known of a policy before it runs: types, cost, conflicts, award bounds."""
