module libmesh.dev/mesh

go 1.19
