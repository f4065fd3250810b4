"""The store in PostgreSQL (asyncpg): the real adapter of each port, its SQL kept at the
top of each module as named statements, none assembled at run time."""
