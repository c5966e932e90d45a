from snapworker.entrypoints.cli import main

main()
