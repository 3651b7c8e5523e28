from nerve._entry import main

main()
