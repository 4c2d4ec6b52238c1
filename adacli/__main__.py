from adacli.cli.main import main

main()
