/* MKL dispatches to its AVX-512 kernels only on CPUs it recognises as Intel. Defining this
   symbol, loaded with RTLD_GLOBAL before libmkl_rt, makes it use them on AMD Zen as well.
   Results were checked against a float64 reference (see Tests: backend parity). */
int mkl_serv_intel_cpu_true(void) { return 1; }
