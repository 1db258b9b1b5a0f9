"""Control: the demand limiter, the load planner and the guard, the only path to a write."""
