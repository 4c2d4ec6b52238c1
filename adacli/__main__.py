from adacli.cli import main

main()
