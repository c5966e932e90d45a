from snapworker.cli import main

main()
