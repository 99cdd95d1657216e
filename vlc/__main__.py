from vlc.cli import main

main()
