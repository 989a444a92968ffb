from tgsync_cli.entry import main

main()
