from edgedet.cli.main import main

main()
