export APP=1
