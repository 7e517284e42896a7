from shardrun.cli.app import main

main()
