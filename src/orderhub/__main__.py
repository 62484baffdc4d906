from orderhub.cli import main

main()
