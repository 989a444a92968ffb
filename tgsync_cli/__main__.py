from tgsync_cli.cli import main

main()
