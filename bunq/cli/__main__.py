"""`python -m bunq.cli ...`, as the supervisor, the Procfile's processes and the tests start bunq."""

from bunq.cli import main

main()
