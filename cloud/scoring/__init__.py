"""Driver scoring: rules as data, scorecards with explanations, leaderboards, badges, challenges."""
