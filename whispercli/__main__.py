from whispercli.cli.app import main

main()
