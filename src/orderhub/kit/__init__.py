"""Small shared plumbing: errors, money, currencies, clock, ids, cursors."""
