/* common/banned.h - functions this code base never calls (forced into every .c file with the
 * build's -include, after the system headers that declare them). Unbounded copies, non-reentrant
 * time and tokenising, and system(). */
#ifndef MK_COMMON_BANNED_H
#define MK_COMMON_BANNED_H

/* The declarations come first, so the macros below only catch calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MK_BANNED(func) sorry_##func##_is_banned

#undef strcpy
#define strcpy(x, y) MK_BANNED(strcpy)
#undef strcat
#define strcat(x, y) MK_BANNED(strcat)
#undef sprintf
#define sprintf(...) MK_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) MK_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) MK_BANNED(strtok)
#undef atoi
#define atoi(x) MK_BANNED(atoi)
#undef gmtime
#define gmtime(x) MK_BANNED(gmtime)
#undef localtime
#define localtime(x) MK_BANNED(localtime)
#undef system
#define system(x) MK_BANNED(system)

#endif
