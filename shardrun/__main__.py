from shardrun.cli import main

main()
