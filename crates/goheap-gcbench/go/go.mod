module goheap-gcbench

go 1.19
