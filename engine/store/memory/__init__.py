"""The store in memory: the same ports as the PostgreSQL adapter, for fast tests and demos."""
