/* cmd_flaky COUNTER_FILE FAILURES: counts its runs in COUNTER_FILE; the first FAILURES runs exit
 * 1, later ones print the run number and exit 0. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 64;
    int n = 0;
    FILE *f = fopen(argv[1], "r");
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = 0;
        fclose(f);
    }
    n++;
    f = fopen(argv[1], "w");
    if (!f)
        return 3;
    fprintf(f, "%d\n", n);
    fclose(f);
    if (n <= atoi(argv[2])) {
        fprintf(stderr, "run %d fails\n", n);
        return 1;
    }
    printf("run %d\n", n);
    return 0;
}
